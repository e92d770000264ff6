package modelbox

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

// protoCodec encodes messages with the protobuf runtime the generated code was built for.
// gRPC-Go's built-in codec goes through the older github.com/golang/protobuf API, which some
// distributions pair with a version that cannot encode current generated messages (oneofs).
type protoCodec struct{}

func (protoCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("modelbox: cannot encode %T: not a protobuf message", v)
	}
	return proto.MarshalOptions{}.Marshal(m)
}

func (protoCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("modelbox: cannot decode into %T: not a protobuf message", v)
	}
	return proto.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(data, m)
}

// Name is "proto": the content type stays application/grpc+proto, as every server expects.
func (protoCodec) Name() string { return "proto" }
