#!/usr/bin/env bash
# Starts the Debezium Cassandra 5 agent (io.debezium.connector.cassandra.CassandraConnectorTask) in the
# foreground as PID 1, with the properties file given by DEBEZIUM_PROPERTIES (default
# /etc/debezium/agent.properties, to be mounted). Extra arguments are passed to the agent after it.
#
# Environment:
#   DEBEZIUM_PROPERTIES   agent properties file                      (/etc/debezium/agent.properties)
#   DEBEZIUM_HOME         where lib/, jvm17.options, logback.xml are (/opt/debezium)
#   CASSANDRA_STORAGE_DIR the node's storage dir, as mounted here     (/var/lib/cassandra)
#   JAVA_HEAP_OPTS        heap sizing                                 (-XX:MaxRAMPercentage=60)
#   JAVA_OPTS             any further JVM options, appended last
#   DEBEZIUM_LOG_LEVEL    root log level used by the bundled logback.xml (INFO)
set -euo pipefail

home="${DEBEZIUM_HOME:-/opt/debezium}"
props="${DEBEZIUM_PROPERTIES:-/etc/debezium/agent.properties}"
storage="${CASSANDRA_STORAGE_DIR:-/var/lib/cassandra}"

if [[ ! -r "$props" ]]; then
    echo "debezium-agent: no readable properties file at $props (mount one, or set DEBEZIUM_PROPERTIES)" >&2
    exit 64
fi

# The agent expects its offset and relocation directories to exist; create the ones the file names.
prop() {
    sed -n -e "s/^[[:space:]]*${1//./\\.}[[:space:]]*[=:][[:space:]]*//p" "$props" | tr -d '\r' | tail -n 1 \
        | sed -e 's/[[:space:]]*$//'
}
for key in offset.backing.store.dir commit.log.relocation.dir; do
    dir="$(prop "$key")"
    if [[ -n "$dir" ]]; then
        mkdir -p "$dir"
    fi
done

cassandra_yaml="$(prop cassandra.config)"
if [[ -n "$cassandra_yaml" && ! -r "$cassandra_yaml" ]]; then
    echo "debezium-agent: cassandra.config=$cassandra_yaml is not readable: mount the node's cassandra.yaml" >&2
    exit 64
fi

# Word splitting of JAVA_HEAP_OPTS / JAVA_OPTS is intended (several options in one variable).
# shellcheck disable=SC2086
exec java \
    ${JAVA_HEAP_OPTS:--XX:MaxRAMPercentage=60} \
    -XX:+UseG1GC \
    -XX:+ExitOnOutOfMemoryError \
    "@${home}/jvm17.options" \
    "-Dcassandra.storagedir=${storage}" \
    "-Dlogback.configurationFile=${home}/logback.xml" \
    ${JAVA_OPTS:-} \
    -cp "${home}/lib/*" \
    io.debezium.connector.cassandra.CassandraConnectorTask \
    "$props" "$@"
