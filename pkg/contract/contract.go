// Package contract holds the event contract: the domain event types, what
// each one produces (the one table, documented in docs/architecture.md), decoding and validation of
// events as they arrive on the wire, and the messages published to a user's
// NOTIFY subject.
package contract

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/xpeditis/notify/pkg/contract/eventv1"
)

// Event is the generated proto3 type of a domain event.
type Event = eventv1.Event

// Priority of an in-app notification.
type Priority string

const (
	PriorityLow    Priority = "LOW"
	PriorityMedium Priority = "MEDIUM"
	PriorityHigh   Priority = "HIGH"
	PriorityUrgent Priority = "URGENT"
)

// Priorities lists every priority, lowest first.
var Priorities = []Priority{PriorityLow, PriorityMedium, PriorityHigh, PriorityUrgent}

// ParsePriority accepts a priority name in any case.
func ParsePriority(s string) (Priority, bool) {
	p := Priority(strings.ToUpper(strings.TrimSpace(s)))
	for _, known := range Priorities {
		if p == known {
			return p, true
		}
	}
	return "", false
}

// Route says what one domain event type produces. An empty InApp means no
// in-app notification; an empty Webhook means no webhook delivery.
type Route struct {
	InApp    string   // in-app notification type
	Priority Priority // default priority of the in-app notification
	Title    string   // default title
	Message  string   // default message
	Webhook  string   // webhook event name
}

// routes is the event-type table (docs/architecture.md), the only place in code that
// maps domain events to notifications and webhook events.
var routes = map[string]Route{
	"BOOKING_CREATED":        {InApp: "BOOKING_CREATED", Priority: PriorityMedium, Title: "Booking created", Message: "A new booking has been created.", Webhook: "BOOKING_CREATED"},
	"BOOKING_UPDATED":        {Webhook: "BOOKING_UPDATED"},
	"BOOKING_STATUS_CHANGED": {InApp: "BOOKING_STATUS_CHANGED", Priority: PriorityMedium, Title: "Booking status changed", Message: "The status of a booking has changed.", Webhook: "BOOKING_UPDATED"},
	"BOOKING_CANCELLED":      {InApp: "BOOKING_STATUS_CHANGED", Priority: PriorityHigh, Title: "Booking cancelled", Message: "A booking has been cancelled.", Webhook: "BOOKING_CANCELLED"},
	"RATE_QUOTED":            {Webhook: "RATE_QUOTED"},
	"DOCUMENT_UPLOADED":      {InApp: "DOCUMENT_UPLOADED", Priority: PriorityLow, Title: "Document uploaded", Message: "A new document has been uploaded."},
	"CARRIER_ACCEPTED":       {InApp: "CARRIER_ACCEPTED", Priority: PriorityHigh, Title: "Carrier accepted", Message: "The carrier has accepted the booking.", Webhook: "CARRIER_ACCEPTED"},
	"CARRIER_REJECTED":       {InApp: "CARRIER_REJECTED", Priority: PriorityHigh, Title: "Carrier rejected", Message: "The carrier has rejected the booking.", Webhook: "CARRIER_REJECTED"},
	"PAYMENT_SUCCESS":        {InApp: "PAYMENT_SUCCESS", Priority: PriorityMedium, Title: "Payment received", Message: "A payment has succeeded.", Webhook: "PAYMENT_SUCCESS"},
	"PAYMENT_FAILED":         {InApp: "PAYMENT_FAILED", Priority: PriorityUrgent, Title: "Payment failed", Message: "A payment has failed.", Webhook: "PAYMENT_FAILED"},
	"SUBSCRIPTION_UPDATED":   {InApp: "SUBSCRIPTION_UPDATED", Priority: PriorityLow, Title: "Subscription updated", Message: "Your subscription has been updated."},
	"SYSTEM":                 {InApp: "SYSTEM", Priority: PriorityMedium, Title: "System notice", Message: "A message from Xpeditis."},
}

// RouteOf returns what a domain event type produces.
func RouteOf(eventType string) (Route, bool) {
	r, ok := routes[eventType]
	return r, ok
}

// EventTypes lists the domain event types, in the order of the proto enum.
func EventTypes() []string {
	out := make([]string, 0, len(routes))
	for i := 1; ; i++ {
		name, ok := eventv1.EventType_name[int32(i)]
		if !ok {
			return out
		}
		out = append(out, name)
	}
}

// NotificationTypes lists the in-app notification types, without repeats.
func NotificationTypes() []string { return distinct(func(r Route) string { return r.InApp }) }

// WebhookEvents lists the webhook event names, without repeats.
func WebhookEvents() []string { return distinct(func(r Route) string { return r.Webhook }) }

// WebhookEventSubjects lists the EVENTS subjects of the domain event types
// that produce a webhook delivery: the webhook dispatcher consumes only
// those, so other events cost it nothing.
func WebhookEventSubjects() []string {
	var out []string
	for _, t := range EventTypes() {
		if routes[t].Webhook != "" {
			out = append(out, EventsSubject(t))
		}
	}
	return out
}

// distinct lists the non-empty values of one field of the table, in the
// order of the event types.
func distinct(field func(Route) string) []string {
	var out []string
	for _, t := range EventTypes() {
		if v := field(routes[t]); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// Bounds of an event, so that one producer cannot make every consumer hold
// an unbounded message.
const (
	MaxEventBytes    = 256 << 10
	MaxRecipients    = 1000
	MaxIDLength      = 200
	MaxTitleLength   = 200
	MaxMessageLength = 2000
)

// InvalidEventError says why an event was refused. Consumers dead-letter such
// events instead of retrying them: no redelivery can make them valid.
type InvalidEventError struct {
	Kind   string // decode, too_large, unknown_type or invalid: a metric label
	Reason string // for people
}

func (e *InvalidEventError) Error() string { return "invalid event: " + e.Reason }

func invalid(format string, args ...any) error {
	return &InvalidEventError{Kind: "invalid", Reason: fmt.Sprintf(format, args...)}
}

func invalidKind(kind, format string, args ...any) error {
	return &InvalidEventError{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// IsInvalid reports whether err says the event itself is bad.
func IsInvalid(err error) bool {
	var ie *InvalidEventError
	return errors.As(err, &ie)
}

var decoder = protojson.UnmarshalOptions{DiscardUnknown: true}

// Decode parses the proto3 JSON form of an event and validates it. Unknown
// fields are ignored so that producers can move ahead of consumers.
func Decode(data []byte) (*Event, error) {
	if len(data) > MaxEventBytes {
		return nil, invalidKind("too_large", "event is %d bytes, over the limit of %d", len(data), MaxEventBytes)
	}
	ev := &Event{}
	if err := decoder.Unmarshal(data, ev); err != nil {
		return nil, invalidKind("decode", "cannot decode JSON: %v", err)
	}
	if err := Validate(ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// Encode returns the proto3 JSON form of an event.
func Encode(ev *Event) ([]byte, error) {
	return protojson.Marshal(ev)
}

// Validate checks an event against the contract.
func Validate(ev *Event) error {
	switch {
	case ev.GetId() == "":
		return invalid("id is required")
	case len(ev.GetId()) > MaxIDLength:
		return invalid("id is longer than %d characters", MaxIDLength)
	case ev.GetType() == "":
		return invalid("type is required")
	case ev.GetOrganizationId() == "":
		return invalid("organizationId is required")
	case len(ev.GetOrganizationId()) > MaxIDLength:
		return invalid("organizationId is longer than %d characters", MaxIDLength)
	case len(ev.GetRecipients()) > MaxRecipients:
		return invalid("%d recipients, over the limit of %d", len(ev.GetRecipients()), MaxRecipients)
	case len(ev.GetTitle()) > MaxTitleLength:
		return invalid("title is longer than %d characters", MaxTitleLength)
	case len(ev.GetMessage()) > MaxMessageLength:
		return invalid("message is longer than %d characters", MaxMessageLength)
	}
	if _, ok := RouteOf(ev.GetType()); !ok {
		return invalidKind("unknown_type", "unknown type %q", ev.GetType())
	}
	if p := ev.GetPriority(); p != "" {
		if _, ok := ParsePriority(p); !ok {
			return invalid("unknown priority %q", p)
		}
	}
	for i, r := range ev.GetRecipients() {
		if r == "" || len(r) > MaxIDLength {
			return invalid("recipient %d is empty or longer than %d characters", i, MaxIDLength)
		}
	}
	return nil
}

// EventsSubject is the JetStream subject of a domain event type.
func EventsSubject(eventType string) string { return "events." + eventType }

// NotifySubject is the subject of one user's realtime stream. User ids are
// opaque strings; characters that NATS treats as separators or wildcards are
// escaped so that every id maps to exactly one token.
func NotifySubject(userID string) string { return "notify.user." + SubjectToken(userID) }

// LiveSubject is where the NOTIFY stream republishes each stored message of
// a user, with the headers nats.JSSequence ("Nats-Sequence", the offset of
// the message) and nats.JSLastSequence ("Nats-Last-Sequence", the offset of
// the previous message on the same user subject). Realtime consumers
// subscribe here with core NATS.
func LiveSubject(userID string) string { return "live.user." + SubjectToken(userID) }

// SubjectToken escapes s into a single NATS subject token. Letters, digits,
// '-' and '_' pass through; every other byte becomes '%XX'.
func SubjectToken(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			clean = false
			break
		}
	}
	if clean && s != "" {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tokenByte(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() == 0 {
		return "%00"
	}
	return b.String()
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
