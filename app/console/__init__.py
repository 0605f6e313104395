"""The web console at ``/console``: a person's timeline and beliefs, and the operators' view (issue 17)."""
