"""(being written: this family is not registered yet)."""
