"""The webhook inbox: verify → store once per ``(source, external_id)`` → enqueue after commit → handle."""
