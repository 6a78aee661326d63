"""Process launch and multi-process plumbing."""
