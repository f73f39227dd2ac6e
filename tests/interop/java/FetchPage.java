// The article's hwr2.cs, for today's Java: fetch a page over HTTPS with a client certificate
// from a PKCS#12 file, using only the JDK (java.net.http.HttpClient, JSSE).
//
//   java FetchPage.java URL TRUSTSTORE [P12]
//
// TRUSTSTORE holds the root the server's certificate must chain to (any keystore type the JDK
// reads, e.g. what `mutls certmgr --install-root root.cer --java --java-keystore FILE` makes;
// password $TRUSTSTORE_PASSWORD, default "changeit"). P12 is the client identity, its password
// in $P12_PASSWORD (kept off the command line). The TLS versions offered are the JDK's own
// switch, -Djdk.tls.client.protocols=TLSv1.2.
//
// Prints "status N", "protocol TLSv1.x", then the body; an exception is one line on stderr,
// exit 2.

import java.io.FileInputStream;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSession;
import javax.net.ssl.TrustManagerFactory;

public final class FetchPage {
    private FetchPage() {}

    public static void main(String[] args) {
        if (args.length < 2 || args.length > 3) {
            System.err.println("usage: FetchPage URL TRUSTSTORE [P12]");
            System.exit(2);
        }
        try {
            fetch(URI.create(args[0]), Path.of(args[1]), args.length == 3 ? Path.of(args[2]) : null);
        } catch (Exception e) {
            System.err.println("error: " + e);
            System.exit(2);
        }
    }

    private static void fetch(URI url, Path truststore, Path p12) throws Exception {
        String storePassword = System.getenv().getOrDefault("TRUSTSTORE_PASSWORD", "changeit");
        KeyStore trust = KeyStore.getInstance(truststore.toFile(), storePassword.toCharArray());
        TrustManagerFactory trustManagers =
            TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trustManagers.init(trust);

        KeyManager[] keyManagers = null;
        if (p12 != null) {
            char[] password = System.getenv().getOrDefault("P12_PASSWORD", "").toCharArray();
            KeyStore identity = KeyStore.getInstance("PKCS12");
            try (InputStream in = new FileInputStream(p12.toFile())) {
                identity.load(in, password);
            }
            KeyManagerFactory factory =
                KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            factory.init(identity, password);
            keyManagers = factory.getKeyManagers();
        }

        SSLContext context = SSLContext.getInstance("TLS");
        context.init(keyManagers, trustManagers.getTrustManagers(), null);
        HttpClient client = HttpClient.newBuilder()
            .sslContext(context)
            .connectTimeout(Duration.ofSeconds(10))
            .build();
        HttpRequest request = HttpRequest.newBuilder(url).timeout(Duration.ofSeconds(20)).build();
        HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
        System.out.println("status " + response.statusCode());
        System.out.println("protocol " + response.sslSession().map(SSLSession::getProtocol).orElse("none"));
        System.out.print(response.body());
    }
}
