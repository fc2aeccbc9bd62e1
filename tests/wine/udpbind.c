/* udpbind ADDR PORT: binds one UDP socket on ADDR:PORT, echoes the first datagram and exits.
 * Under Wine 8, when ADDR is not an address of a host interface (127.0.60.100 on a host whose lo
 * carries only 127.0.0.1), wineserver binds the Unix socket to 0.0.0.0 instead (server/sock.c,
 * bind_to_interface returns "bound" when no interface matched), so the echo leaves from
 * 127.0.0.1:PORT and a connected client never sees it. Windows binds ADDR as asked.
 * Build: x86_64-w64-mingw32-gcc -O2 -o udpbind.exe udpbind.c -lws2_32 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    WSADATA wsa;
    struct sockaddr_in a = {0}, peer, name;
    int plen = sizeof peer, nlen = sizeof name, len;
    char buf[512], text[64];
    SOCKET s;
    if (argc != 3) return 2;
    WSAStartup(MAKEWORD(2, 2), &wsa);
    s = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    a.sin_family = AF_INET;
    a.sin_port = htons((u_short)atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) {
        printf("bind failed: %d\n", WSAGetLastError());
        return 1;
    }
    getsockname(s, (struct sockaddr *)&name, &nlen);
    inet_ntop(AF_INET, &name.sin_addr, text, sizeof text);
    printf("bound: getsockname says %s:%d\n", text, ntohs(name.sin_port));
    fflush(stdout);
    len = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&peer, &plen);
    inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text);
    printf("got %d bytes from %s:%d, echoing\n", len, text, ntohs(peer.sin_port));
    sendto(s, buf, len, 0, (struct sockaddr *)&peer, plen);
    return 0;
}
