// Package check holds the tests of what deploy/ ships that no Go service
// runs: the Dockerfile (parsed, and its build commands run) and the Helm
// chart (rendered, and every object decoded strictly into its Kubernetes
// API type).
package check
