"""Export: a trained adapter as a GGUF LoRA for llama.cpp, or merged into its base (``chime export``)."""
