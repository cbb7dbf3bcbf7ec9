package edge

import (
	"strconv"

	"github.com/sentimentpro/sentiment/internal/httperr"
)

// appendScore writes a probability with 4 decimals, like the CLI.
func appendScore(dst []byte, f float32) []byte {
	return strconv.AppendFloat(dst, float64(f), 'f', 4, 32)
}

// appendField appends ,"key":"value" (or without the comma when first).
func appendField(dst []byte, key, value string, first bool) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	dst = append(dst, `":`...)
	return httperr.AppendJSONString(dst, value)
}
