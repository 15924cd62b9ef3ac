/*
 * keytunnel's FreeRDP 2 client plugin: a dumb pipe between the RDP dynamic virtual channel "keytunnel" and the
 * keytunnel agent's --listen endpoint on this machine (127.0.0.1 by default).
 *
 *   gateway in the VM --(DVC "keytunnel", opened by the VM side)--> this plugin --(TCP)--> keytunnel agent
 *
 * The bytes are the tunnel's TLS 1.3 stream, end to end between gateway and agent: no CTAP, TLS or framing here.
 * Each channel the server opens gets its own TCP connection to the agent; a channel the agent cannot be reached
 * for is refused, so the VM side's open fails at once (as it does for a client without this plugin).
 *
 * Usage: xfreerdp ... /dvc:keytunnel,PORT   (or /dvc:keytunnel,127.0.0.1:PORT; KEYTUNNEL_AGENT=HOST:PORT also
 * works). FreeRDP 2 loads it from <libdir>/freerdp2/libkeytunnel-client.so and calls DVCPluginEntry.
 *
 * FreeRDP 2's IWTSVirtualChannel::Close does not close a channel towards the server (a no-op in 2.x), so when the
 * agent drops the TCP connection this plugin stops forwarding and discards what the VM sends; the gateway's tunnel
 * heartbeat then declares the link dead and closes the channel, and its reopen gets a fresh connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <freerdp/dvc.h>
#include <freerdp/settings.h>
#include <winpr/stream.h>
#include <winpr/wlog.h>

#define TAG "com.keytunnel.rdp"
#define CHANNEL_NAME "keytunnel"
/* One DVC data PDU carries at most 1590 bytes; FreeRDP fragments larger writes itself. */
#define READ_CHUNK 16384

typedef struct
{
	IWTSVirtualChannelCallback iface; /* first: FreeRDP hands this pointer back */
	IWTSVirtualChannel* channel;
	int fd;
	pthread_t reader;
	int reader_started;
	volatile int closing;
} Pipe;

typedef struct
{
	IWTSListenerCallback iface;
	struct sockaddr_in agent;
} Listener;

typedef struct
{
	IWTSPlugin iface;
	Listener* listener;
} Plugin;

/* Write all of `len` bytes to the agent; 0 on success. */
static int send_all(int fd, const BYTE* data, size_t len)
{
	while (len > 0)
	{
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Agent -> channel, until the agent closes or the channel does. */
static void* reader_main(void* arg)
{
	Pipe* pipe = (Pipe*)arg;
	BYTE buf[READ_CHUNK];
	for (;;)
	{
		ssize_t n = recv(pipe->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || pipe->closing)
			break;
		UINT rc = pipe->channel->Write(pipe->channel, (ULONG)n, buf, NULL);
		if (rc != CHANNEL_RC_OK)
		{
			WLog_WARN(TAG, "writing to the channel failed (%u)", rc);
			break;
		}
	}
	if (!pipe->closing)
	{
		WLog_INFO(TAG, "the agent closed the connection");
		shutdown(pipe->fd, SHUT_RDWR);
		pipe->channel->Close(pipe->channel);
	}
	return NULL;
}

static UINT pipe_on_data(IWTSVirtualChannelCallback* cb, wStream* data)
{
	Pipe* pipe = (Pipe*)cb;
	size_t len = Stream_GetRemainingLength(data);
	if (len > 0 && send_all(pipe->fd, Stream_Pointer(data), len) != 0)
		WLog_DBG(TAG, "dropping %zu bytes: the agent connection is gone", len);
	return CHANNEL_RC_OK;
}

static UINT pipe_on_open(IWTSVirtualChannelCallback* cb)
{
	Pipe* pipe = (Pipe*)cb;
	if (pthread_create(&pipe->reader, NULL, reader_main, pipe) != 0)
	{
		WLog_ERR(TAG, "cannot start the reader thread");
		return ERROR_INTERNAL_ERROR;
	}
	pipe->reader_started = 1;
	return CHANNEL_RC_OK;
}

static UINT pipe_on_close(IWTSVirtualChannelCallback* cb)
{
	Pipe* pipe = (Pipe*)cb;
	pipe->closing = 1;
	shutdown(pipe->fd, SHUT_RDWR); /* wakes the reader */
	if (pipe->reader_started && !pthread_equal(pipe->reader, pthread_self()))
		pthread_join(pipe->reader, NULL);
	else if (pipe->reader_started)
		pthread_detach(pipe->reader);
	close(pipe->fd);
	free(pipe);
	WLog_INFO(TAG, "channel closed");
	return CHANNEL_RC_OK;
}

static UINT listener_on_new_channel(IWTSListenerCallback* cb, IWTSVirtualChannel* channel, BYTE* data,
                                    BOOL* accept, IWTSVirtualChannelCallback** out)
{
	Listener* listener = (Listener*)cb;
	(void)data;
	*accept = FALSE;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return CHANNEL_RC_OK;
	if (connect(fd, (struct sockaddr*)&listener->agent, sizeof(listener->agent)) != 0)
	{
		char host[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &listener->agent.sin_addr, host, sizeof(host));
		WLog_ERR(TAG, "refusing the channel: no keytunnel agent on %s:%u (%s)", host,
		         ntohs(listener->agent.sin_port), strerror(errno));
		close(fd);
		return CHANNEL_RC_OK;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	Pipe* pipe = calloc(1, sizeof(Pipe));
	if (!pipe)
	{
		close(fd);
		return CHANNEL_RC_NO_MEMORY;
	}
	pipe->iface.OnDataReceived = pipe_on_data;
	pipe->iface.OnOpen = pipe_on_open;
	pipe->iface.OnClose = pipe_on_close;
	pipe->channel = channel;
	pipe->fd = fd;
	*accept = TRUE;
	*out = &pipe->iface;
	WLog_INFO(TAG, "channel opened; bridged to the agent");
	return CHANNEL_RC_OK;
}

static UINT plugin_initialize(IWTSPlugin* iface, IWTSVirtualChannelManager* mgr)
{
	Plugin* plugin = (Plugin*)iface;
	return mgr->CreateListener(mgr, CHANNEL_NAME, 0, &plugin->listener->iface, NULL);
}

static UINT plugin_terminated(IWTSPlugin* iface)
{
	Plugin* plugin = (Plugin*)iface;
	free(plugin->listener);
	free(plugin);
	return CHANNEL_RC_OK;
}

/* "PORT" or "HOST:PORT" (IPv4 numeric); 0 on success. */
static int parse_agent(const char* text, struct sockaddr_in* out)
{
	char host[64] = "127.0.0.1";
	const char* port = text;
	const char* colon = strrchr(text, ':');
	if (colon)
	{
		size_t n = (size_t)(colon - text);
		if (n == 0 || n >= sizeof(host))
			return -1;
		memcpy(host, text, n);
		host[n] = '\0';
		port = colon + 1;
	}
	char* end = NULL;
	long p = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
		return -1;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)p);
	return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

FREERDP_API UINT DVCPluginEntry(IDRDYNVC_ENTRY_POINTS* entry)
{
	if (entry->GetPlugin(entry, CHANNEL_NAME))
		return CHANNEL_RC_ALREADY_INITIALIZED;
	ADDIN_ARGV* args = entry->GetPluginData(entry);
	const char* where = (args && args->argc > 1) ? args->argv[1] : getenv("KEYTUNNEL_AGENT");
	if (!where)
	{
		WLog_ERR(TAG, "name the agent's --listen port: /dvc:" CHANNEL_NAME ",PORT");
		return ERROR_INVALID_PARAMETER;
	}
	Listener* listener = calloc(1, sizeof(Listener));
	Plugin* plugin = calloc(1, sizeof(Plugin));
	if (!listener || !plugin)
	{
		free(listener);
		free(plugin);
		return CHANNEL_RC_NO_MEMORY;
	}
	if (parse_agent(where, &listener->agent) != 0)
	{
		WLog_ERR(TAG, "bad agent address \"%.64s\": expected PORT or IPv4:PORT", where);
		free(listener);
		free(plugin);
		return ERROR_INVALID_PARAMETER;
	}
	listener->iface.OnNewChannelConnection = listener_on_new_channel;
	plugin->listener = listener;
	plugin->iface.Initialize = plugin_initialize;
	plugin->iface.Terminated = plugin_terminated;
	return entry->RegisterPlugin(entry, CHANNEL_NAME, &plugin->iface);
}
