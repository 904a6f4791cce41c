//go:build !linux

package gateway

// watch reports false: without epoll, each connection parks a goroutine
// (see readMessages).
func (s *Server) watch(*reader) bool { return false }

func unwatch(uint32) {}
