"""Beat: the periodic schedule, the due-post dispatcher, and beat's leadership lock."""
