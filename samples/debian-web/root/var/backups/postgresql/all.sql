--
-- PostgreSQL database cluster dump
--
-- (Truncated placeholder in the dynmigrate sample.)

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
