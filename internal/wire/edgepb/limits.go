package edgepb

import "time"

// MinKeepalive is the shortest keepalive ping interval the relay's edge listener accepts from
// an edge daemon: a client pinging more often is closed (gRPC "too_many_pings"). The edge
// daemon pings less often than this, and the relay's edge.heartbeat_interval may not be
// shorter.
const MinKeepalive = 20 * time.Second
