"""What tests import: signed callers and tokens, real servers and hostile peers to drive."""
