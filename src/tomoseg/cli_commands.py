"""Sub-commands that live beside the modules they adapt; importing this registers them."""
