"""Parameter-tree surgery: path selection, freeze masks, subtree transfer (never imports train)."""
