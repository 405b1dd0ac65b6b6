package storetest

import "github.com/hookferry/hookferry/keyring"

// Keys is a keyring for tests: a fixed key, so that any test can open what
// another wrote.
func Keys() *keyring.Keyring {
	k, err := keyring.Parse(TestKey)
	if err != nil {
		panic(err)
	}
	return k
}

// TestKey is the base64 key of Keys.
const TestKey = "aG9va2ZlcnJ5LXRlc3Qta2V5LW5vdC1mb3ItdXNlISE="
