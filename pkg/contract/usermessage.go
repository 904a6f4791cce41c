package contract

import "encoding/json"

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
