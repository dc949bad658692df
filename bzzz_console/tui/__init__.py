"""The Textual operator console: the only part of bzzz-console that imports textual."""
