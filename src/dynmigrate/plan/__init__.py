"""plan: findings -> migration plan (pure data) -> drop-ins, scripts, review documents."""
