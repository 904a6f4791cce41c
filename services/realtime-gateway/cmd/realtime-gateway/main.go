// Command realtime-gateway is built by its own issue; this placeholder keeps the
// workspace building until then.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "realtime-gateway: not built yet")
	os.Exit(1)
}
