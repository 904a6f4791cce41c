package contract

import (
	"encoding/json"
	"time"
)

// Names of the messages published on a user's NOTIFY subject. The realtime
// gateway forwards each one to the user's connections as an event of the
// same name.
const (
	UserEventNotification = "notification"
	UserEventRead         = "notification:read"
	UserEventDeleted      = "notification:deleted"
	UserEventReadAll      = "notification:read-all"
)

// UserMessage is the body of a message on notify.user.<id>: the event name
// and its JSON payload (the notification object for "notification").
type UserMessage struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// Notification is the JSON form of an in-app notification, as the REST API
// returns it and as the "notification" message carries it.
type Notification struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Priority  Priority        `json:"priority"`
	Title     string          `json:"title"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
	EventID   string          `json:"eventId"`
	Read      bool            `json:"read"`
	ReadAt    *time.Time      `json:"readAt"`
	CreatedAt time.Time       `json:"createdAt"`
}

// ReadMessage is the payload of "notification:read".
type ReadMessage struct {
	ID     string    `json:"id"`
	ReadAt time.Time `json:"readAt"`
}

// DeletedMessage is the payload of "notification:deleted".
type DeletedMessage struct {
	ID string `json:"id"`
}

// ReadAllMessage is the payload of "notification:read-all": how many
// notifications were marked, when, and the filters of the request (absent
// when it had none), so that a tab can apply the same change locally.
type ReadAllMessage struct {
	Count   int64           `json:"count"`
	ReadAt  time.Time       `json:"readAt"`
	Filters json.RawMessage `json:"filters,omitempty"`
}
