<?php
// Sample configuration: the values below are placeholders, not credentials.
$db_dsn = 'pgsql:host=/run/postgresql;dbname=shop';
$db_user = 'shop';
$db_pass = 'sample-placeholder-not-a-secret';
ini_set('session.save_handler', 'redis');
ini_set('session.save_path', 'tcp://127.0.0.1:6379');
