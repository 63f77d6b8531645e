"""Files: atomic writes, safetensors, the names inside run and comparison folders, pretrained folders, export."""
