from chime.cli import main

raise SystemExit(main())
