<?php
// Front controller of the shop (deployed from git by the deploy user).
require __DIR__ . '/config.php';
session_start();
echo "shop.example.org\n";
