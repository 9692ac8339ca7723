from chime.launch import main

raise SystemExit(main())
