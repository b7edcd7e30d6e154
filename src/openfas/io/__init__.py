"""File formats shared by every layer (no openfas imports): the safetensors checkpoint format."""
