"""The model: the frozen open_clip ViT backbone (and, with the side network issue, TDS-CLIP)."""
