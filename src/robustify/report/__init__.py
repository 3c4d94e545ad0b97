"""Tables (CSV) and figures from records — never re-running a model."""
