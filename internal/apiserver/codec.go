package apiserver

import (
	"fmt"
	"mime"
	"net/http"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// Media types the server reads and writes.
const (
	mediaJSON     = "application/json"
	mediaYAML     = "application/yaml"
	mediaProtobuf = "application/vnd.kubernetes.protobuf"
)

// codecs holds the serializers for every served type. Encoders are used
// directly (not through a versioning codec) because cached objects are
// shared and already carry their apiVersion and kind: mutating them to set
// a GVK would race.
type codecs struct {
	scheme     *runtime.Scheme
	json       *json.Serializer
	jsonStrict *json.Serializer
	yaml       *json.Serializer
	yamlStrict *json.Serializer
	protobuf   *protobuf.Serializer
	// protobufRaw frames watch events, which carry no envelope of their own.
	protobufRaw *protobuf.RawSerializer
}

func newCodecs() (*codecs, error) {
	s := runtime.NewScheme()
	if err := scheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("register built-in types: %w", err)
	}
	metaGV := schema.GroupVersion{Group: "meta.k8s.io", Version: "v1"}
	s.AddKnownTypes(metaGV, &metav1.Table{}, &metav1.TableOptions{}, &metav1.PartialObjectMetadata{},
		&metav1.PartialObjectMetadataList{}, &metav1.Status{}, &metav1.WatchEvent{}, &metav1.APIResourceList{},
		&metav1.APIGroupList{}, &metav1.APIGroup{}, &metav1.APIVersions{})
	if err := apidiscoveryv2.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("register discovery types: %w", err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("register apiextensions types: %w", err)
	}
	if err := apiregistrationv1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("register apiregistration types: %w", err)
	}
	mf := json.DefaultMetaFactory
	return &codecs{
		scheme:      s,
		json:        json.NewSerializerWithOptions(mf, s, s, json.SerializerOptions{}),
		jsonStrict:  json.NewSerializerWithOptions(mf, s, s, json.SerializerOptions{Strict: true}),
		yaml:        json.NewSerializerWithOptions(mf, s, s, json.SerializerOptions{Yaml: true}),
		yamlStrict:  json.NewSerializerWithOptions(mf, s, s, json.SerializerOptions{Yaml: true, Strict: true}),
		protobuf:    protobuf.NewSerializer(s, s),
		protobufRaw: protobuf.NewRawSerializer(s, s),
	}, nil
}

// decoderFor picks the request body decoder from Content-Type.
func (c *codecs) decoderFor(contentType string) (runtime.Decoder, string, error) {
	mt := mediaJSON
	if contentType != "" {
		t, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, "", err
		}
		mt = t
	}
	switch mt {
	case mediaJSON, "application/merge-patch+json", "application/json-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml", "*/*":
		return c.jsonStrict, mt, nil
	case mediaYAML:
		return c.yamlStrict, mt, nil
	case mediaProtobuf:
		return c.protobuf, mt, nil
	}
	return nil, mt, fmt.Errorf("unsupported media type %q", mt)
}

// accept is the negotiated response format.
type accept struct {
	media     string // mediaJSON, mediaYAML or mediaProtobuf
	table     bool   // as=Table;g=meta.k8s.io;v=v1
	partial   bool   // as=PartialObjectMetadata(List)
	discovery bool   // as=APIGroupDiscoveryList;g=apidiscovery.k8s.io;v=v2
}

// negotiate reads the Accept header. Unknown or wildcard types fall back to
// JSON, as upstream does for clients that accept anything.
func negotiate(r *http.Request) (accept, error) {
	h := r.Header.Get("Accept")
	if h == "" {
		return accept{media: mediaJSON}, nil
	}
	var firstErr error
	for _, part := range strings.Split(h, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		a := accept{}
		switch mt {
		case mediaJSON, "application/*", "*/*", "application/json;stream=watch":
			a.media = mediaJSON
		case mediaYAML:
			a.media = mediaYAML
		case mediaProtobuf, "application/vnd.kubernetes.protobuf;stream=watch":
			a.media = mediaProtobuf
		default:
			continue
		}
		switch params["as"] {
		case "":
		case "Table":
			if params["g"] != "meta.k8s.io" || (params["v"] != "v1" && params["v"] != "v1beta1") {
				continue
			}
			a.table = true
		case "PartialObjectMetadata", "PartialObjectMetadataList":
			if params["g"] != "meta.k8s.io" {
				continue
			}
			a.partial = true
		case "APIGroupDiscoveryList":
			if params["g"] != "apidiscovery.k8s.io" || params["v"] != "v2" {
				continue
			}
			a.discovery = true
		default:
			if firstErr == nil {
				firstErr = fmt.Errorf("unsupported Accept %q", part)
			}
			continue
		}
		return a, nil
	}
	if firstErr != nil {
		return accept{}, firstErr
	}
	// Nothing acceptable; upstream answers 406 only when a specific
	// transformation was requested, otherwise JSON.
	return accept{media: mediaJSON}, nil
}

func (c *codecs) encoderFor(media string) runtime.Encoder {
	switch media {
	case mediaYAML:
		return c.yaml
	case mediaProtobuf:
		return c.protobuf
	}
	return c.json
}
