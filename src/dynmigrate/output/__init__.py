"""What changes the scanning machine: writing a plan folder, and running systemd-analyze."""
