"""Google Calendar and Tasks: sync (worker side), corrections and the events view (API side)."""
