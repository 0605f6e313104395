"""Google Calendar and Tasks: credentials from a connection, the API clients (google-api-python-client), the
``google-calendar`` push provider of the webhook inbox, sync coalescing, and the calendar meter inputs."""
