// Command webhook-dispatcher is built by its own issue; this placeholder keeps the
// workspace building until then.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "webhook-dispatcher: not built yet")
	os.Exit(1)
}
