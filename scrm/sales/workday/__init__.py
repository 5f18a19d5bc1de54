"""A salesperson's day (我的一天): what to do this morning, in one place."""
