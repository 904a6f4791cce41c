package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xpeditis/notify/pkg/cmd/cli"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/publisher"
)

// runPublish publishes one event, requires the EVENTS stream's ack, prints
// the event id on standard output (so that a script can select what it
// created) and what happened on standard error.
func runPublish(ctx context.Context, args []string, io cli.Stdio) error {
	c := cli.New("notifyctl", "publish", "Publishes a domain event on events.<TYPE> and waits for the EVENTS stream to\nstore it; prints the event id. Fails when no EVENTS stream acknowledges it.",
		`notifyctl publish -type BOOKING_CREATED -org org-42 -user user-7 -data '{"bookingId":"BK-1"}'`,
		`EVENT=$(notifyctl publish -wait -type PAYMENT_FAILED -org org-42 -user user-7,user-8)`,
		`NATS_URL=nats://nats.internal:4222 notifyctl publish -type SYSTEM -org org-1 -user ops-1 -title 'Maintenance tonight'`)
	var url string
	c.NATSFlag(&url)
	typ := c.FS.String("type", "BOOKING_CREATED", "event type: "+strings.Join(contract.EventTypes(), ", "))
	id := c.FS.String("id", "", "event id (default: a new UUID); publishing the same id again is a duplicate the stream drops")
	org := c.FS.String("org", "org-1", "organization id (owner of the data; scopes webhooks)")
	users := c.FS.String("user", "user-1", "recipient user id; comma-separated for several, empty for none")
	priority := c.FS.String("priority", "", "priority override: LOW, MEDIUM, HIGH, URGENT")
	title := c.FS.String("title", "", "title override")
	message := c.FS.String("message", "", "message override")
	data := c.FS.String("data", "{}", "JSON object passed as the event's data")
	wait := c.FS.Bool("wait", false, "return once notification-api has stored the notifications (its consumer acked the event)")
	consumer := c.FS.String("consumer", "notification-api", "with -wait: the durable consumer on EVENTS to wait for")
	timeout := c.FS.Duration("timeout", 10*time.Second, "how long to wait for the stream (and, with -wait, the consumer)")
	if err := c.Parse(args, io); err != nil {
		return err
	}

	ev := &contract.Event{
		Id:             *id,
		Type:           *typ,
		OccurredAt:     timestamppb.Now(),
		OrganizationId: *org,
		Priority:       *priority,
		Title:          *title,
		Message:        *message,
	}
	if ev.Id == "" {
		ev.Id = uuid.NewString()
	}
	for _, r := range strings.Split(*users, ",") {
		if r = strings.TrimSpace(r); r != "" {
			ev.Recipients = append(ev.Recipients, r)
		}
	}
	var payload map[string]any
	if err := json.Unmarshal([]byte(*data), &payload); err != nil {
		return cli.Usagef("publish: -data is not a JSON object: %w", err)
	}
	st, err := structpb.NewStruct(payload)
	if err != nil {
		return cli.Usagef("publish: -data: %w", err)
	}
	ev.Data = st

	// Credentials and TLS as the services take them (NATS_CREDS,
	// NATS_NKEY_SEED, NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_TLS_*).
	env := config.FromOS()
	natsAuth := config.ReadNATSAuth(env)
	if err := env.Err(); err != nil {
		return err
	}
	authOpts, err := natsx.ClientOptions(natsAuth)
	if err != nil {
		return err
	}
	where := "NATS_URL=" + natsx.RedactURL(url)
	nc, err := nats.Connect(url, append(authOpts, nats.Name("notifyctl"), nats.Timeout(5*time.Second))...)
	if err != nil {
		return fmt.Errorf("publish: cannot connect to %s (auth %s): %w (is notifyd running? it listens for producers on its NATS_LISTEN, default 127.0.0.1:4223; set NATS_URL or -nats to the server the services use)", where, natsAuth.Method(), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	ack, err := publisher.New(js).Publish(ctx, ev)
	switch {
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("publish: no EVENTS stream acknowledged the event at %s: the server there is not one the services use (or they never started on it): %w", where, err)
	case err != nil:
		return fmt.Errorf("publish: %w", err)
	case ack.Stream != natsx.StreamEvents:
		return fmt.Errorf("publish: stream %q stored the event, not %s: %s is not the notification services' server", ack.Stream, natsx.StreamEvents, where)
	}
	dup := ""
	if ack.Duplicate {
		dup = " (a duplicate: this id is already in the stream)"
	}
	fmt.Fprintf(io.Err, "published %s %s on %s: stream %s, seq %d%s\n", ev.Type, ev.Id, contract.EventsSubject(ev.Type), ack.Stream, ack.Sequence, dup)
	if *wait {
		if err := waitForConsumer(ctx, js, *consumer, ack.Sequence); err != nil {
			return fmt.Errorf("publish -wait: %w", err)
		}
		fmt.Fprintf(io.Err, "%s has processed it\n", *consumer)
	}
	fmt.Fprintln(io.Out, ev.Id)
	return nil
}

// waitForConsumer returns once the durable consumer has acknowledged every
// message of EVENTS up to seq: for notification-api, the notifications of
// the event are stored.
func waitForConsumer(ctx context.Context, js jetstream.JetStream, name string, seq uint64) error {
	cons, err := js.Consumer(ctx, natsx.StreamEvents, name)
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w (has the service started on this server?)", name, natsx.StreamEvents, err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := cons.Info(ctx)
		if err == nil && info.AckFloor.Stream >= seq {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("acked up to seq %d, %d pending", info.AckFloor.Stream, info.NumPending+uint64(info.NumAckPending))
			}
			return fmt.Errorf("consumer %s did not process seq %d in time: %w", name, seq, err)
		case <-tick.C:
		}
	}
}
