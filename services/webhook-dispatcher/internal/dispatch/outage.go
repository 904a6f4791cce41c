package dispatch

import (
	"log/slog"
	"time"
)

// outageReminder is how often a failure that lasts is logged again.
const outageReminder = 30 * time.Second

// outage logs a failure that repeats (PostgreSQL unreachable): one WARN when
// it starts, a reminder at most every outageReminder while it lasts, and
// one INFO with its length when it ends, instead of a line per try. It is
// used by one goroutine.
type outage struct {
	what     string // what fails, e.g. "claim due deliveries"
	log      *slog.Logger
	since    time.Time
	reported time.Time
}

// failed records a failed try.
func (o *outage) failed(err error, args ...any) {
	now := time.Now()
	if !o.since.IsZero() && now.Sub(o.reported) < outageReminder {
		return
	}
	if o.since.IsZero() {
		o.since = now
	}
	o.reported = now
	o.log.Warn(o.what+" failed; retrying", append(args, "failing_for", now.Sub(o.since).Round(time.Millisecond).String(), "err", err)...)
}

// ok records a successful try.
func (o *outage) ok() {
	if o.since.IsZero() {
		return
	}
	o.log.Info(o.what+" works again", "failed_for", time.Since(o.since).Round(time.Millisecond).String())
	o.since = time.Time{}
}
