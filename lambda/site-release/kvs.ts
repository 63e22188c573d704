import { CloudFrontKeyValueStoreClient, CloudFrontKeyValueStoreClientConfig } from '@aws-sdk/client-cloudfront-keyvaluestore';

export { CloudFrontKeyValueStoreClient };

/**
 * A KeyValueStore client. The KeyValueStore API signs with SigV4A: without @aws-sdk/signature-v4a loaded the
 * client fails before sending, so it is loaded here, with the first client, not when this module loads (the
 * handler bundle also loads the KeyValueStore client on first use: "lazy" in bundle.json).
 */
export function kvsClient(config: CloudFrontKeyValueStoreClientConfig = {}): CloudFrontKeyValueStoreClient {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('@aws-sdk/signature-v4a');
  return new CloudFrontKeyValueStoreClient(config);
}
