package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/publisher"
)

func runPublish(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("publish", flag.ExitOnError)
	url := fs.String("nats", envOr("NATS_URL", "nats://127.0.0.1:4223"), "NATS URL (default: $NATS_URL, else notifyd's embedded server)")
	typ := fs.String("type", "BOOKING_CREATED", "event type: "+strings.Join(contract.EventTypes(), ", "))
	id := fs.String("id", "", "event id (default: a new UUID)")
	org := fs.String("org", "org-1", "organization id")
	to := fs.String("to", "user-1", "comma-separated recipients (may be empty)")
	priority := fs.String("priority", "", "priority override: LOW, MEDIUM, HIGH, URGENT")
	title := fs.String("title", "", "title override")
	message := fs.String("message", "", "message override")
	data := fs.String("data", "{}", "JSON object passed as the event's data")
	_ = fs.Parse(args)

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
	for _, r := range strings.Split(*to, ",") {
		if r = strings.TrimSpace(r); r != "" {
			ev.Recipients = append(ev.Recipients, r)
		}
	}
	var payload map[string]any
	if err := json.Unmarshal([]byte(*data), &payload); err != nil {
		return fmt.Errorf("-data: %w", err)
	}
	st, err := structpb.NewStruct(payload)
	if err != nil {
		return fmt.Errorf("-data: %w", err)
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
	nc, err := nats.Connect(*url, append(authOpts, nats.Name("notifyctl"), nats.Timeout(5*time.Second))...)
	if err != nil {
		return fmt.Errorf("connect %s (auth %s): %w", natsx.RedactURL(*url), natsAuth.Method(), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := publisher.New(js).Publish(ctx, ev)
	if err != nil {
		return err
	}
	dup := ""
	if ack.Duplicate {
		dup = " (duplicate: already in the stream)"
	}
	fmt.Printf("published %s %s to %s, stream %s seq %d%s\n", ev.Type, ev.Id, contract.EventsSubject(ev.Type), ack.Stream, ack.Sequence, dup)
	return nil
}
