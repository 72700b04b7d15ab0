#!/usr/bin/perl
# BackupPC CGI wrapper
use lib "/usr/share/backuppc/lib";
