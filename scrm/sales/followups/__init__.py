"""Follow-ups (跟进记录): notes, calls and visits with a next-contact date, and the reminders on that day."""
