"""Offline training of s1-style reasoning models: data, FSDP2 trainer, checkpoints and export."""
