#!/bin/sh
# fake-agent.sh stands in for `rudder agent run` in the tests of package edged.
# Usage: fake-agent.sh MODE ARG... [the agent's own arguments]
#   lines MARKER CODE   print a line to stdout and one to stderr, wait (at most 10 s) until
#                       the file MARKER exists, print another line, exit CODE
#   hang PIDFILE        start a grandchild in the same process group, write its pid and
#                       ours to PIDFILE, wait forever
#   big BYTES           print BYTES times "x" and a newline
mode=$1
echo "start $*"
case "$mode" in
lines)
	echo "line 1"
	echo "to stderr" >&2
	i=0
	while [ ! -e "$2" ] && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	echo "line 2"
	exit "$3"
	;;
hang)
	sleep 1000 &
	echo $! >"$2.tmp"
	echo $$ >>"$2.tmp"
	mv "$2.tmp" "$2"
	wait
	;;
big)
	head -c "$2" /dev/zero | tr '\0' 'x'
	echo
	;;
esac
