// The CloudFront KeyValueStore API signs with SigV4A: without this import the client fails before sending.
import '@aws-sdk/signature-v4a';
import { CloudFrontKeyValueStoreClient, CloudFrontKeyValueStoreClientConfig } from '@aws-sdk/client-cloudfront-keyvaluestore';

export { CloudFrontKeyValueStoreClient };

export function kvsClient(config: CloudFrontKeyValueStoreClientConfig = {}): CloudFrontKeyValueStoreClient {
  return new CloudFrontKeyValueStoreClient(config);
}
