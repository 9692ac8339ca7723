"""Fitting: seed-format data -> tokenised, labelled sequences -> a LoRA adapter (``chime train``)."""
