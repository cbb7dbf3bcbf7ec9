// Package archtest holds the tests that keep the module's arrows pointing
// the right way: what each binary links, and that the registry's wire
// documents are defined once (docs/ARCHITECTURE.md).
package archtest
