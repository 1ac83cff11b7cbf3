# Loads the session environment the host writes at sandbox start (rootforge's managed file).
if [ -r /etc/rootforge/session-env.sh ]; then
	. /etc/rootforge/session-env.sh
fi
