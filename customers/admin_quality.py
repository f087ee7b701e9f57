"""Admin for the data quality scan's findings (likely duplicates)."""
