package mapper

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// A realistic comment payload: one entry, Meta's escapes, ~600 bytes.
var benchBody = []byte(`{"object":"instagram","entry":[{"id":"17841405309211844","time":1758712345,"changes":[{"field":"comments","value":{"id":"17919697626119712","text":"Love this! \ud83d\ude0d \u00dcn\u00efc\u00f6d\u00e9 \/ @friend ` +
	strings.Repeat("so good ", 30) + `","parent_id":"17865799348089039","from":{"id":"6453120148059171","username":"some_customer"},"media":{"id":"18172143295349192","media_product_type":"FEED"}}}]}]}`)

// BenchmarkVerifySignature checks X-Hub-Signature-256 against two secrets
// (a rotation), as intake does.
func BenchmarkVerifySignature(b *testing.B) {
	secrets := [][]byte{[]byte("old-secret"), []byte("meta-app-secret")}
	mac := hmac.New(sha256.New, []byte("meta-app-secret"))
	mac.Write(benchBody)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := verifyMeta(sig, benchBody, secrets); err != nil {
			b.Fatal(err)
		}
	}
}
