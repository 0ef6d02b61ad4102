"""Queries through the hub under the legal exchange table, and the 情報提供等記録."""
