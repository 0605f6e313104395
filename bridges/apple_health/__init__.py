"""Apple Health via the phone: HealthKit has no cloud API, so the phone uploads (Health Auto Export JSON)."""
