"""Trust in what upstream servers tell the model: tool definitions pinned, changes held back."""
