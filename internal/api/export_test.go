package api

// Patterns returns the route table's patterns, for the test that checks
// no route to a function can take one of Mote's own paths.
func (s *Server) Patterns() []string { return s.paths }
